module tokenwarden.io/hack/pause

go 1.21
