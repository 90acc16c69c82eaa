module github.com/rbee/rbee

go 1.26

require (
	github.com/ollama/ollama v0.17.4
	github.com/pelletier/go-toml/v2 v2.2.2
)
