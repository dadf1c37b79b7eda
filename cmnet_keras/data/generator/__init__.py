"""The embedded dataset's generator: real faces animated with subtle movements, in the CASME II layout.

`faces` crops the real faces, `motion` builds the displacement fields of the
movements, `clips` draws and renders one clip, and `dataset` writes the tree
(`generate_embedded_dataset`); `python -m cmnet_keras.data.embedded` is its command line.
"""
