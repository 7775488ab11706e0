"""The database: engines and URLs per dialect, every database (bind) of an app, pools against the
server's limits, which database a connection is really on, the gate that keeps tests on test
databases, the environment stamp. Imports settings and state, nothing above.
"""
