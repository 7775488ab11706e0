"""The database: URLs (``urls``) and engines per dialect (``engines``, ``sqla``), every database
(bind) of an app (``binds``), pools against the server's limits (``capacity``), which database a
connection is really on (``identity``), the gate that keeps tests on test databases (``gate``),
the environment a database records (``stamp``) and what each command may do to it
(``environments``), creating and dropping databases (``admin``), what an error means
(``errors``), and a cluster run from a wheel (``embedded``). Imports the state, the settings and
the hooks; nothing above.
"""
