"""symlab.linalg"""
