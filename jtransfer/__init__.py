"""jtransfer: which pre-trained model, layer and checkpoint will transfer best to my task?"""

__version__ = "0.1.0"
