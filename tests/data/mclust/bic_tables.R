# Reference BIC tables of R's mclust under its default conjugate prior (priorControl()), for
# tests/test_mclust.py.  Run from this folder:  Rscript bic_tables.R
# Writes iris.csv, faithful.csv and diabetes.csv (the data sets as mclust has them) and
# bic_tables.json: for iris, faithful and diabetes (mclust's data sets), the data, the
# hierarchical-clustering partition mclustBIC starts each G from (hc on the SVD-transformed
# data, mclust.options("hcUse")), and mclustBIC's table for G = 1..9 and the ten models mclust
# has a prior for, with EM run to a relative log-likelihood change of 1e-14 (the inner
# iterations of VEI and VEV to 1e-13).  mclust fits VEE, EVE, VVE and EVV without a prior only.
library(mclust)
data(diabetes)
sets <- list(iris = as.matrix(iris[, 1:4]), faithful = as.matrix(faithful),
             diabetes = as.matrix(diabetes[, -1]))
models <- c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "EEV", "VEV", "VVV")
G <- 1:9
ctrl <- emControl(tol = c(1e-14, 1e-13), itmax = c(100000, 100000))
num <- function(x) paste0("[", paste(ifelse(is.na(x), "null", sprintf("%.17g", as.vector(x))), collapse = ", "), "]")
out <- c()
for (name in names(sets)) {
  X <- sets[[name]]
  write.csv(X, paste0(name, ".csv"), row.names = FALSE)  # the data set as mclust has it
  pairs <- hc(X, modelName = mclust.options("hcModelName"), use = mclust.options("hcUse"))
  starts <- sapply(G, function(g) num(if (g == 1) rep(1, nrow(X)) else hclass(pairs, g)))
  bic <- mclustBIC(X, G = G, modelNames = models, prior = priorControl(), control = ctrl)
  table <- sapply(models, function(m) sprintf('"%s": %s', m, num(bic[, m])))
  out <- c(out, sprintf('"%s": {"n": %d, "d": %d, "X": %s, "starts": [%s], "bic": {%s}}',
                        name, nrow(X), ncol(X), num(X), paste(starts, collapse = ", "),
                        paste(table, collapse = ", ")))
}
writeLines(paste0('{"mclust_version": "', as.character(packageVersion("mclust")), '",',
                  ' "layout": "R column-major X (n x d); starts: the class (1..G) of every row for G = 1..9",',
                  ' "G": [', paste(G, collapse = ", "), '], "data": {', paste(out, collapse = ", "), "}}"),
           "bic_tables.json")
