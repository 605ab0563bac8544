package main

import (
	"context"
	"errors"
)

func bench(ctx context.Context, a *app) error { return errors.New("todo") }
