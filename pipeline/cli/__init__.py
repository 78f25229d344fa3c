"""The command line: the commands and their flags (commands, options, command_options: the
only Typer importers) and the checks of the flags' values (checks); each command's work from
checked Settings to an exit code (launch); and what a run shows (progress, summary, compare,
chart: the only importers of rich and matplotlib). The top room: it may import every other;
nothing imports it."""
