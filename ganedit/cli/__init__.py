"""The `ganedit` command. Each module in this package that defines ``register(cli: click.Group)``
adds its subcommands; adding a subcommand is one new file here. Keep heavy imports (torch, models)
inside the command functions so that `ganedit --help` stays fast."""
