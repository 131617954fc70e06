/* main.js - starts the console once every page has registered */
'use strict';
window.Moat.start();
