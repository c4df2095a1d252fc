# Reference MAP fits of R's mclust under its default conjugate prior (priorControl()), for
# tests/test_mclust.py.  Run from this folder:  Rscript iris_prior_fits.R
# Writes iris_prior_fits.json: the iris data (150 x 4), mclust's hierarchical-clustering start
# (responsibilities 150 x 3), and for each of the ten models mclust has a prior for (VVV, EEE,
# VVI, VII, EII, EEI, VEI, EVI, EEV, VEV): mclust's prior (defaultPrior), one M-step from the
# start ("mstep": me with one iteration, because mclustBIC runs the EM routines me*, whose M-step
# differs from mstep's for EII, EEI, EVI and EEV), and EM to convergence from the start (me,
# relative log-likelihood tolerance 1e-14; the inner iterations of VEI and VEV to 1e-13).
library(mclust)
X <- as.matrix(iris[, 1:4])
z <- unmap(hclass(hc(X, modelName = "VVV"), 3))
num <- function(x) paste0("[", paste(sprintf("%.17g", as.vector(x)), collapse = ", "), "]")
ctrl <- emControl(tol = c(1e-14, 1e-13), itmax = c(100000, 100000))
step <- emControl(tol = c(1e-14, 1e-13), itmax = c(1, 100000))
models <- c()
for (m in c("VVV", "EEE", "VVI", "VII", "EII", "EEI", "VEI", "EVI", "EEV", "VEV")) {
  p <- defaultPrior(X, G = 3, modelName = m)
  one <- suppressWarnings(me(X, modelName = m, z = z, prior = priorControl(), control = step))
  fit <- me(X, modelName = m, z = z, prior = priorControl(), control = ctrl)
  models <- c(models, sprintf(
    paste0('"%s": {"prior": {"shrinkage": %s, "mean": %s, "dof": %s, "scale": %s},',
           ' "mstep": {"pro": %s, "mean": %s, "sigma": %s},',
           ' "me": {"pro": %s, "mean": %s, "sigma": %s, "loglik": %s, "iterations": %d}}'),
    m, num(p$shrinkage), num(p$mean), num(p$dof), num(p$scale),
    num(one$parameters$pro), num(one$parameters$mean), num(one$parameters$variance$sigma),
    num(fit$parameters$pro), num(fit$parameters$mean), num(fit$parameters$variance$sigma),
    num(fit$loglik), as.integer(attr(fit, "info")[1])))
}
json <- paste0(
  '{"mclust_version": "', as.character(packageVersion("mclust")), '",',
  ' "layout": "R column-major: X n x d, z n x G, mean d x G, sigma d x d x G",',
  ' "n": ', nrow(X), ', "d": ', ncol(X), ', "G": 3,',
  ' "X": ', num(X), ', "z": ', num(z), ', "models": {', paste(models, collapse = ", "), "}}")
writeLines(json, "iris_prior_fits.json")
