"""The packages of prm_lib, for setuptools (everything else is in pyproject.toml).

Every package under prm_lib/ is found (a new subpackage ships without editing a list), plus
``prm_lib.course.recorded``: the chapters' recorded benchmark results, whose one home is
benchmarks/results/ (pyproject.toml maps it there). pyproject.toml cannot express both: its
``packages.find`` discovers only packages in folders of their own name.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["prm_lib", "prm_lib.*"]), "prm_lib.course.recorded"])
