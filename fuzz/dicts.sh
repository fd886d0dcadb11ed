# Sourced by ci.sh and plateau.sh: the dictionaries each target reads (tokens its parser
# compares against). libFuzzer takes one -dict, so a target that reads several (purge: its JSON
# and the transform options inside its URLs) gets them joined into one file.
declare -A dicts=(
  [spec_route]=options [purge]="json options" [warm]=json [heif]=heif [sniff]=image
  [metadata]=metadata [srcset]=srcset [html]=html [config]=config [pipeline]=pipeline
  [svg]=svg
)

# dict_arg TARGET DIR: prints the -dict= argument for TARGET (nothing for a target without a
# dictionary), joining its dictionaries into DIR/TARGET.dict when it reads more than one.
dict_arg() {
  local names
  read -ra names <<<"${dicts[$1]:-}"
  case ${#names[@]} in
    0) ;;
    1) echo "-dict=dict/${names[0]}.dict" ;;
    *) for n in "${names[@]}"; do cat "dict/$n.dict"; done >"$2/$1.dict"
       echo "-dict=$2/$1.dict" ;;
  esac
}
