"""symlab.ntk"""
