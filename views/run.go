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
	p := tea.NewProgram(New(ws), tea.WithAltScreen())
	// The terminal closing (SIGHUP) or a SIGTERM quits as the quit key
	// does, so the runs stop with a checkpoint rather than die mid-step.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP, syscall.SIGTERM)
	go func() {
		if _, ok := <-hup; ok {
			p.Quit()
		}
	}()
	final, err := p.Run()
	signal.Stop(hup)
	close(hup)
	if m, ok := final.(Model); ok && m.Headless() {
		fmt.Println("training continues without the workstation; Ctrl-C stops it with a checkpoint")
		stop := make(chan struct{})
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		go func() { <-sig; close(stop) }()
		ws.Wait(stop)
		signal.Stop(sig)
	}
	if n := ws.Running(); n > 0 {
		// Each run finishes its step (a validation or a save under way too)
		// and checkpoints: it can take a while on a CPU. A second Ctrl-C
		// abandons them (resume goes back to their last checkpoints).
		fmt.Printf("stopping %d run(s): each finishes its step and writes a checkpoint (Ctrl-C again abandons them)\n", n)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(sig)
		go func() {
			if _, ok := <-sig; ok {
				fmt.Println("abandoned: the runs' last checkpoints stand")
				os.Exit(130)
			}
		}()
	}
	if cerr := ws.Close(); err == nil {
		err = cerr
	}
	return err
}
