# Shortcuts for ./dev, which does the real work (and needs no make on a fresh machine).
.PHONY: demo test lint setup
demo:
	./dev demo
test:
	./dev test
lint:
	./dev lint
setup:
	./dev setup
