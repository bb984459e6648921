package agent

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"
)

// TestWaitTurn: a second agent in the pod waits until the first has gone.
// On synctest's clock: waitTurn retries on a timer, so a second of waiting
// costs nothing, and what it did by then shows at synctest.Wait.
func TestWaitTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := slog.New(slog.DiscardHandler)
		first, err := waitTurn(context.Background(), log)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() {
			second, err := waitTurn(context.Background(), log)
			if err == nil {
				second.Close()
			}
			got <- err
		}()
		time.Sleep(time.Second)
		synctest.Wait()
		select {
		case err := <-got:
			t.Fatalf("second agent took its turn beside the first: %v", err)
		default:
		}
		first.Close()
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("second agent still waits after the first has gone")
		}

		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		held, err := waitTurn(context.Background(), log)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		if _, err := waitTurn(ctx, log); err == nil {
			t.Error("waitTurn returned while the turn is held")
		}
	})
}
