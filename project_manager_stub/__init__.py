"""A small, real project-manager server that plays TANGO's PM for tests, compose and the demo.

Standard library only, so it runs in any Python 3.10+ container. See `python -m project_manager_stub -h`.
"""
