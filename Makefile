.PHONY: test demo

# go vet, gofmt (listing offenders), then all tests with the race detector.
test:
	go vet ./...
	@bad="$$(gofmt -l .)"; if [ -n "$$bad" ]; then echo "gofmt -l reports:"; echo "$$bad"; exit 1; fi
	go test -race -count=1 ./...

# Runs the simulation example.
demo:
	go run ./examples/simulate
