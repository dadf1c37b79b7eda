"""`python -m cmnet_keras.export`: runs the command `cmnet_keras.commands.export`."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("cmnet_keras.commands.export", run_name="__main__", alter_sys=True)
