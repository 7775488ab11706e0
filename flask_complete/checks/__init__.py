"""Checks: one table of what ``flask complete check`` reports and what production refuses at start,
with the checks that connect, read files or judge versions. Imports the pieces below it; never
the commands.
"""
