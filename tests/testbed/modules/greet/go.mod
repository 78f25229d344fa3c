module example.com/private/greet

go 1.22
