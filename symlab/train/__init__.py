"""symlab.train"""
