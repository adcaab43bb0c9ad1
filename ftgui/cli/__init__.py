"""The command lines, thin over ``ftgui.core``: one module per command plus what they share.

``ftgui-train`` (train.py), ``ftgui-predict`` (predict.py), ``ftgui-compare`` (compare.py) and
``ftgui-check`` (check.py); options.py holds the options they share, common.py the output.
"""

from ftgui.cli.check import check_main
from ftgui.cli.compare import compare_main
from ftgui.cli.predict import predict_main
from ftgui.cli.train import train_main

__all__ = ["check_main", "compare_main", "predict_main", "train_main"]
