"""The command lines: each module parses its options, calls the library, prints and exits.

`python -m cmnet_keras.<name>` (and `python -m cmnet_keras.data.embedded`,
`python -m tuning.grid`) runs `cmnet_keras.commands.<name>`; the `cmnet-*`
console scripts call its `main`. `cli` holds the options and the exit-code
handling they share. Nothing in the library imports this package.
"""
