# The end of the supervised form (see supervisor.sh): run the script as a child, without the
# agent's pipe on fd 9 (a background process of the script must not keep the run "running").
case $__vmexec_how in
runuser) runuser -u "$__vmexec_user" -- $__vmexec_interp "$__vmexec_f.sh" 9>&- ;;
su) su -s /bin/sh "$__vmexec_user" -c 'exec "$0" "$@"' $__vmexec_interp "$__vmexec_f.sh" 9>&- ;;
*) $__vmexec_interp "$__vmexec_f.sh" 9>&- ;;
esac
