#!/bin/sh
cat /app/message
