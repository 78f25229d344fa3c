module 192.0.2.1/git/words.git

go 1.22
