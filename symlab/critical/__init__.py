"""symlab.critical"""
