// Command web is a one-room chat in the browser over MQTT over WebSocket:
// a vanemq broker with a TCP listener and a WebSocket listener, and a small
// HTTP server for the page (static/index.html and static/app.js), which talks
// to the broker with MQTT.js from npm.
//
//	cd examples/web
//	npm ci           # MQTT.js (and playwright-core, for the test)
//	go run .
//
// then open http://127.0.0.1:8080/ in two browser tabs and chat. The page
// subscribes to the topic "chat/room" and publishes what you type there;
// any MQTT client can join, for instance
//
//	mosquitto_sub -p 1883 -t chat/room -v
//	mosquitto_pub -p 1883 -t chat/room -m 'hello from the terminal'
//
// The page and the broker are on different ports, so the browser sends an
// Origin header of the page's server; the WebSocket listener allows only
// that origin (without allowed_origins, a loopback listener allows pages
// from any loopback origin, and another listener only its own host).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/listeners/tcp"
	"github.com/vanemq/vanemq/listeners/websocket"
)

// Topic is the chat room's topic.
const Topic = "chat/room"

// config is where the example listens and where it finds its files.
type config struct {
	TCP, WS, HTTP string // host:port of each listener; port 0 picks one
	Static        string // the page's directory
	MQTTJS        string // MQTT.js's browser bundle, served as /mqtt.min.js
}

// example is the running example.
type example struct {
	Server  *core.Server
	TCPAddr string // the MQTT over TCP listener
	WSURL   string // ws://host:port/mqtt
	PageURL string // http://host:port/
	httpSrv *http.Server
}

func main() {
	var cfg config
	flag.StringVar(&cfg.TCP, "tcp", "127.0.0.1:1883", "MQTT over TCP on `HOST:PORT`")
	flag.StringVar(&cfg.WS, "ws", "127.0.0.1:8083", "MQTT over WebSocket on `HOST:PORT`")
	flag.StringVar(&cfg.HTTP, "http", "127.0.0.1:8080", "serve the page on `HOST:PORT`")
	flag.StringVar(&cfg.Static, "static", "static", "serve the page from `DIR`")
	flag.StringVar(&cfg.MQTTJS, "mqttjs", filepath.Join("node_modules", "mqtt", "dist", "mqtt.min.js"),
		"MQTT.js browser bundle `FILE` (run npm ci to get it)")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ex, err := start(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "web:", err)
		os.Exit(1)
	}
	logger.Info("chat room ready", "page", ex.PageURL, "ws", ex.WSURL, "tcp", ex.TCPAddr, "topic", Topic)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ex.Shutdown(sctx); err != nil {
		fmt.Fprintln(os.Stderr, "web: shutdown:", err)
		os.Exit(1)
	}
}

// start starts the broker and the page's HTTP server.
func start(ctx context.Context, cfg config, logger *slog.Logger) (*example, error) {
	if _, err := os.Stat(cfg.MQTTJS); err != nil {
		return nil, fmt.Errorf("MQTT.js bundle: %w (run npm ci in examples/web)", err)
	}
	// The page's server first: its address is the origin the WebSocket
	// listener must allow.
	hl, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return nil, err
	}
	_, httpPort, _ := net.SplitHostPort(hl.Addr().String())
	pageHost := hl.Addr().String()
	if h, _, _ := net.SplitHostPort(cfg.HTTP); h == "" || h == "0.0.0.0" || h == "::" {
		pageHost = net.JoinHostPort("localhost", httpPort)
	}
	origins := []string{
		"http://" + pageHost,
		"http://" + net.JoinHostPort("localhost", httpPort),
		"http://" + net.JoinHostPort("127.0.0.1", httpPort),
	}

	srv, err := core.New(core.Options{AllowAnonymous: true, Logger: logger})
	if err != nil {
		_ = hl.Close()
		return nil, err
	}
	tl := tcp.New("tcp", cfg.TCP)
	wl := websocket.New("ws", cfg.WS, websocket.Options{AllowedOrigins: origins, Logger: logger})
	for _, l := range []core.Listener{tl, wl} {
		if err := srv.AddListener(l); err != nil {
			_ = hl.Close()
			return nil, err
		}
	}
	if err := srv.Start(context.WithoutCancel(ctx)); err != nil {
		_ = hl.Close()
		return nil, err
	}
	ex := &example{Server: srv, TCPAddr: tl.Address(), PageURL: "http://" + pageHost + "/"}
	_, wsPort, _ := net.SplitHostPort(wl.Address())
	wsHost, _, _ := net.SplitHostPort(pageHost)
	ex.WSURL = "ws://" + net.JoinHostPort(wsHost, wsPort) + websocket.DefaultPath

	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServer(http.Dir(cfg.Static)))
	mux.HandleFunc("GET /mqtt.min.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		http.ServeFile(w, r, cfg.MQTTJS)
	})
	// config.json tells the page where the broker is and which topic is the room.
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"url": ex.WSURL, "topic": Topic})
	})
	ex.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := ex.httpSrv.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("page server", "err", err)
		}
	}()
	return ex, nil
}

// Shutdown stops the page's server and the broker.
func (ex *example) Shutdown(ctx context.Context) error {
	return errors.Join(ex.httpSrv.Shutdown(ctx), ex.Server.Shutdown(ctx))
}
