"""symlab.symmetry"""
