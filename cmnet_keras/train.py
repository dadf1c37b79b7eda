"""`python -m cmnet_keras.train`: runs the command `cmnet_keras.commands.train`."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("cmnet_keras.commands.train", run_name="__main__", alter_sys=True)
