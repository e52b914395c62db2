package views

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"distill/app"
)

// Run opens the workstation over the run database at dbPath and returns
// when the user quits. Runs started here are cancelled (with a checkpoint)
// on the way out.
func Run(dbPath string) error {
	ws, err := app.OpenWorkstation(dbPath)
	if err != nil {
		return err
	}
	// Ask the terminal for its background once, before Bubble Tea reads
	// stdin: asked later, the answer would reach the program's input instead.
	lipgloss.SetHasDarkBackground(lipgloss.HasDarkBackground())
	final, err := tea.NewProgram(New(ws), tea.WithAltScreen()).Run()
	if m, ok := final.(Model); ok && m.Headless() {
		fmt.Println("training continues without the workstation; Ctrl-C stops it with a checkpoint")
		stop := make(chan struct{})
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		go func() { <-sig; close(stop) }()
		ws.Wait(stop)
		signal.Stop(sig)
	}
	if cerr := ws.Close(); err == nil {
		err = cerr
	}
	return err
}
