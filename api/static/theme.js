// Runs before first paint (a classic script in <head>), so a light-mode user never sees a dark flash.
document.documentElement.dataset.theme = localStorage.getItem("imagebatch.theme")
  || (matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark");
