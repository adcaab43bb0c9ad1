# `make run` opens ftgui, `make test` runs the whole test suite headless.
# Both create .venv and install ftgui into it on first use (again when pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ftgui-installed

.PHONY: run test test-archs test-fast lint bundle bundle-deb bundle-check bench bench-accuracy bench-reference bench-deploy bench-compare bench-distributed bench-classify bench-growth clean

run: $(STAMP)
	$(BIN)/ftgui $(ARGS)

# Two test processes (pytest-xdist), one torch thread each: the tests' tiny models gain nothing
# from a second thread, and two processes on two cores finish the suite in two thirds the time.
WORKERS ?= 2
PYTEST  := OMP_NUM_THREADS=1 QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -n $(WORKERS)

test: $(STAMP)
	$(PYTEST) -m "not archs" $(PYTEST_ARGS)

# Every torchvision architecture through train, restore, export and predict (about 10 minutes;
# make test runs one architecture of each family).
test-archs: $(STAMP)
	$(PYTEST) -m archs $(PYTEST_ARGS)

# The quick loop: everything but the tests marked slow (subprocesses, fuzzing, every
# architecture, whole trainings through the window or the command line).
test-fast: $(STAMP)
	$(PYTEST) -m "not slow and not archs" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check ftgui tests benchmarks installer
	$(BIN)/lint-imports
	$(BIN)/mypy

# The installed application, without Python: a one-folder PyInstaller bundle in dist/ftgui (one
# executable, and a link to it for each command-line program), a .deb of it, and a check of
# that .deb installed and used as a user would (as root; see the README's Install section).
bundle: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[bundle]'
	$(BIN)/pyinstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller installer/ftgui.spec
	du -sh dist/ftgui

bundle-deb: bundle
	$(BIN)/python installer/build_deb.py

bundle-check: bundle-deb
	$(BIN)/python installer/bundle_check.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_training.py $(ARGS)

bench-accuracy: $(STAMP)
	$(BIN)/python benchmarks/bench_accuracy.py $(ARGS)

# The accuracy benchmark with fastai's and Lightning's recipes as reference columns: they go in
# .venv-ref, layered on .venv (its torch and ftgui are used as they are, nothing changes there).
REF := .venv-ref
bench-reference: $(STAMP)
	test -x $(REF)/bin/python || $(PYTHON) -m venv $(REF)
	$(REF)/bin/python -c "import site, sys; open(site.getsitepackages()[0] + '/ftgui-main-venv.pth', 'w').write('import site; site.addsitedir(%r)\n' % sys.argv[1])" "$$($(BIN)/python -c 'import site; print(site.getsitepackages()[0])')"
	$(REF)/bin/pip install -q "fastai>=2.8,<3" "pytorch-lightning>=2.4,<3"
	$(REF)/bin/python benchmarks/bench_accuracy.py $(ARGS)

# Every export format of ResNet18 and MobileNet v3 on the digits task: accuracy change, ms per
# image at batch 1 and 32, size, against PyTorch fp32 (about 10 minutes).
bench-deploy: $(STAMP)
	$(BIN)/python benchmarks/bench_deploy.py $(ARGS)

bench-compare: $(STAMP)
	$(BIN)/python benchmarks/bench_compare.py $(ARGS)

bench-distributed: $(STAMP)
	$(BIN)/python benchmarks/bench_distributed.py $(ARGS)

bench-classify: $(STAMP)
	$(BIN)/python benchmarks/bench_classify.py $(ARGS)

bench-growth: $(STAMP)
	$(BIN)/python benchmarks/bench_growth.py $(ARGS)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,dev,onnx,bench,tensorboard,insight,timm,openvino,coreml,tflite]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) $(REF) build *.egg-info .pytest_cache
