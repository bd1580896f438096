module cafe

go 1.26.8

require github.com/buger/jsonparser v1.6.1
