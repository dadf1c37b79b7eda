"""`python -m cmnet_keras.predict`: runs the command `cmnet_keras.commands.predict`."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("cmnet_keras.commands.predict", run_name="__main__", alter_sys=True)
