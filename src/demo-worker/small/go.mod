module corral.dev/small-worker

go 1.26.0
