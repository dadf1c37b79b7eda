"""`python -m cmnet_keras.preprocess`: runs the command `cmnet_keras.commands.preprocess`."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("cmnet_keras.commands.preprocess", run_name="__main__", alter_sys=True)
