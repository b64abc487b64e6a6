"""symlab.engine"""
