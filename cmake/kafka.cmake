# kafka.cmake - librdkafka for src/kafka_in.c and src/kafka_mock.c.
# Included from CMakeLists.txt after the poold_core target is defined:
#   include(${CMAKE_SOURCE_DIR}/cmake/kafka.cmake)
# Debian 12: librdkafka-dev (2.0.2). Headers are included as
# <librdkafka/rdkafka.h> and <librdkafka/rdkafka_mock.h>.
pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)
target_link_libraries(poold_core PUBLIC PkgConfig::RDKAFKA)
