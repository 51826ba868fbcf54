package history_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chatio/socketio-chat/history"
)

// The chat's use: a Writer acks and broadcasts from its callback, in offset
// order; a joining client reads what it missed with After.
func ExampleWriter() {
	dir, _ := os.MkdirTemp("", "history-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	store, err := history.Open(ctx, filepath.Join(dir, "chat.db"), history.Options{})
	if err != nil {
		fmt.Println(err) // "open history …/chat.db: …"
		return
	}
	defer store.Close()
	w := history.NewWriter(store, history.WriterOptions{})

	done := make(chan struct{})
	for _, m := range []history.Message{
		{Payload: []byte(`"hello"`), ClientOffset: "client1-0"},
		{Payload: []byte(`"hello"`), ClientOffset: "client1-0"}, // a retry
		{Payload: []byte(`"world"`)},
	} {
		w.Submit(m, func(r history.Result, err error) {
			// On the Writer's goroutine, in order: ack, and broadcast what is new.
			switch {
			case err != nil:
				fmt.Println("refuse the ack:", err)
			case r.Duplicate:
				fmt.Println("ack again, do not broadcast:", r.Offset)
			default:
				fmt.Println("ack and broadcast with offset", r.Offset)
			}
			done <- struct{}{}
		})
		<-done
	}
	w.Close(ctx)

	recs, _ := store.After(ctx, 1, 100) // a client whose serverOffset is 1
	for _, r := range recs {
		fmt.Println(r.Offset, string(r.Payload))
	}
	// Output:
	// ack and broadcast with offset 1
	// ack again, do not broadcast: 1
	// ack and broadcast with offset 2
	// 2 "world"
}
