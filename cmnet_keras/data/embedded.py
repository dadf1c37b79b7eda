"""`python -m cmnet_keras.data.embedded`: runs the command `cmnet_keras.commands.embedded`."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("cmnet_keras.commands.embedded", run_name="__main__", alter_sys=True)
