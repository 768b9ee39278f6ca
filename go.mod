module github.com/socius/socius

go 1.26.8
