@echo off
rem Double-click to install the training agent: runs install.ps1 from this folder, which
rem asks for the platform URL and your API key unless BACKEND_URL and API_KEY are set.
powershell.exe -NoProfile -ExecutionPolicy Bypass -File "%~dp0install.ps1" %*
set status=%ERRORLEVEL%
pause
exit /b %status%
