"""Data: seeds, data fixtures (their files, their values, the models as they see them). Imports
migrations, db, state and settings; never web or auth.
"""
