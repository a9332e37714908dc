# Delete the files of finished runs.
#
# $1 run directory, $2... run ids (32 hex digits: safe in a glob).
d=$1; shift
for id; do rm -f -- "$d/$id".*; done
