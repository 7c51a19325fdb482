"""The web page served at `/` (index.html, app.js, app.css): package data, no build step."""
