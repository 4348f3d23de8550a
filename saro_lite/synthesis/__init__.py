"""Data a stage synthesizes: RIT-D traces and OP-COT / PP-COT pairs written by a teacher (teacher.py, wired
to the recipe in setup.py), or sampled from the RW model itself (self_path.py)."""
