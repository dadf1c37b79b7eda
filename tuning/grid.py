"""`python -m tuning.grid`: runs the command `cmnet_keras.commands.grid`."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("cmnet_keras.commands.grid", run_name="__main__", alter_sys=True)
