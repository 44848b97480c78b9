"""The `sine` command line and the demo: the top layer, which may import every other package.

`sine_cli.app` holds the commands (the `sine` console script is `sine_cli.app:main`);
`sine_cli.demo` is `sine demo`. Nothing imports this package except the console script,
the benchmarks and the tests: the torch-free core `sine` stays below everything.
"""
