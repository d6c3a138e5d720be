"""Pieces every command family needs and none owns: option parsing (``options``), the paper's published
numbers and names (``paper``), and the reproduction's ``results.json`` reader (``results``).

Torch-free, and it imports no other subpackage of :mod:`evrobust.pipelines`.
"""
