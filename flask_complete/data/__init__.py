"""Data fixtures: dump and load (``fixtures``), their files (``format``), column values
(``values``) and the models as fixtures see them (``models``). Imports the database layer, the
state and the settings; never the web pieces or auth.
"""
