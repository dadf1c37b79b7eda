"""`python -m cmnet_keras.merge`: runs the command `cmnet_keras.commands.merge`."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("cmnet_keras.commands.merge", run_name="__main__", alter_sys=True)
