"""Launchers of real processes (a throwaway redis-server, the service under uvicorn) shared by
the tests and the benchmarks, so that neither imports the other. Not part of the installed
package: it is used from a source checkout (the repository root on the import path).
"""
