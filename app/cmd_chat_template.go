package app

import (
	"fmt"
	"io"

	"distill/core/tokenizer/chat"
)

func init() {
	register(command{name: "chat-template", usage: "--model DIR --messages FILE.json [--add-generation-prompt]", run: runChatTemplate})
}

func runChatTemplate(env *Env, args []string) error {
	fs := newFlags(env, "chat-template", "--model DIR --messages FILE.json [--add-generation-prompt]")
	dir := fs.String("model", "", "model folder with tokenizer_config.json")
	msgs := fs.String("messages", "", "JSON file: [{\"role\",\"content\"},…] or {\"messages\":[…]}")
	genPrompt := fs.Bool("add-generation-prompt", false, "end with the assistant turn's opening")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || *msgs == "" {
		return fmt.Errorf("--model and --messages are required")
	}
	tmpl, err := chat.Load(*dir)
	if err != nil {
		return err
	}
	messages, err := chat.ReadMessages(*msgs)
	if err != nil {
		return err
	}
	out, err := tmpl.Render(messages, *genPrompt)
	if err != nil {
		return err
	}
	_, err = io.WriteString(env.Stdout, out)
	return err
}
